"""Service logic shared by the daemon and the client: the sender side of
file transfer (the reference's single FILE frame, and our extension with
SHA-256 verification, resume and a receiver chain for one-to-many sends)."""
