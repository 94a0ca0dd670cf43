"""For the people who run the server: who is an administrator (`access`), what is stored
about a user and how it is exported or erased (`privacy`), and the retention task."""
