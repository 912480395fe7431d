"""Local doubles of remote services, served for real on 127.0.0.1 (never mocks of our code)."""
