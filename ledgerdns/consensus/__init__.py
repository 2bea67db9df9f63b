"""The consensus driver: real timers, gossip and a durable signing guard around `chain.consensus`."""
