"""absl-py command line: `dcgan <command> --flags`, each a thin layer over the library."""
