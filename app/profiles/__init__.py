"""Creator pages (`/c/<handle>`): handle, bio and avatar (DESIGN.md §13)."""
