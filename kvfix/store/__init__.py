"""The only code that touches rocksdict (and so RocksDB): paths, locks, opening, reading,
writing and backups.  Nothing here hands a rocksdict object to a caller: readers get
bytes and lists of (key, value) pairs, writers give (column family, key, value) triples.
"""
