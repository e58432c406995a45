"""The tensor IR: compute definitions, loop nests, lowering, printer, interpreter."""
