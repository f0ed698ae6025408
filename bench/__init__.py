"""Load, scale and memory benchmarks of bioweb (`make bench`, `make soak`), and the gunicorn
launcher the test suite shares (bench.servers). Not tests; not part of the deployed app."""
