"""Zone files: load with dnspython, validate with file:line problems, save atomically."""
