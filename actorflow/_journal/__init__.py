"""The run journal: records of every run, queries over them, and the tools that show them."""
