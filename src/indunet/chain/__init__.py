"""Supply-chain resilience: the supply graph, stuck points, disruptions, TTS/TTR and carbon."""
