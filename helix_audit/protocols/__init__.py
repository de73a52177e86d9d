"""Pure parsers for the few packets that need them, and the extractor that feeds them."""
