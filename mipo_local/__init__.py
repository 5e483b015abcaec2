"""mipo-local: make a small language model personal to one person, on their own machine.

The library holds every stage (context, pairs, training, model I/O, chat); it never imports
Textual, and heavy libraries (torch, transformers, llama_cpp) are imported inside the functions
that need them so that importing this package stays instant.
"""

__version__ = "0.1.0"
