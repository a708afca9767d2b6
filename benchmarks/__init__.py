"""asv benchmarks of s2gate (``time_*``, ``peakmem_*``, ``track_*``); see README "Benchmarks"."""
