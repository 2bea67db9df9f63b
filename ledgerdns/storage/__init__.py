"""Storage back-ends of the node: implementations of `chain.store.KVStore`."""

from ledgerdns.storage.leveldb import LevelDBStore

__all__ = ["LevelDBStore"]
