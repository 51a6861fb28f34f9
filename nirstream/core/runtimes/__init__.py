"""What runs a network: ONNX Runtime, Keras (TensorFlow), the ONNX export with its parity check, CPU thread limits."""
