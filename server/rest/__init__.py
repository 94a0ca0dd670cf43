"""REST routes and their OpenAPI document."""
