"""manyminds: ask many models at once, compare their answers, return one answer with a measured confidence."""

__version__ = "0.1.0"
