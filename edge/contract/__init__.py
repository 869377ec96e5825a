"""The contract between training, export and the device: facts that must never disagree.

Landmark layout, SLR_SLOVO preprocessing, the ONNX metadata contract, the ZeroMQ message
protocol and its JSON Schemas, the keypoint file format and the Slovo annotations reader.
Nothing here imports the runtime, so training and export can depend on it freely.
"""
