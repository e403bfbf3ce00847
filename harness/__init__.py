"""The processes around the engine that the tests and the benchmarks start alike: free ports,
a private Redis, a local S3 server, an ASGI app served over real HTTP."""
