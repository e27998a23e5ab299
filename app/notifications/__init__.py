"""In-app notifications: the bell, `/notifications`, live over `/ws/me` (DESIGN.md §13)."""
