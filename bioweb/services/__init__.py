"""Use cases. Each public function takes the acting user explicitly, owns its transaction
(one commit), and raises AppError subclasses for anything a client can fix."""
