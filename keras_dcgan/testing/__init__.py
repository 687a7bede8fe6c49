"""Fixtures for the tests, the benchmarks (bench/) and the notebooks' smoke runs; nothing here is
downloaded, and the library itself never imports this package.

`synthetic`: photo-like images written as folders of files or LSUN-style LMDBs, and oversized
PNGs (decompression bombs). `planted`: the planted near-duplicates experiment of `dcgan dedup`.
"""
