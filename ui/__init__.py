"""The browser app's views: attention pictures (`viz`), mask editing (`editor`), messages, examples, page."""
