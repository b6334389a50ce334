"""REST API and web GUI server — arriving with the API issue."""
