"""The engines every stage runs on: llama.cpp (the runtime, the GGUF scan, the chat template and
prompt format, nucleus sampling, batched generation) and PyTorch scoring (log-probabilities of a
response under a checkpoint). Nothing here knows about the pipeline's stages."""
