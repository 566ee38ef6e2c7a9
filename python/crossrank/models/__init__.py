"""Model files and runtimes: hub resolution, ONNX Runtime / OpenVINO sessions, export, the bi-encoder."""
