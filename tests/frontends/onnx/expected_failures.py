"""Every ONNX conformance case that is out of scope or expected to fail, with the reason."""

OUT_OF_SCOPE: dict[str, str] = {}
EXPECTED_FAILURES: dict[str, str] = {}
