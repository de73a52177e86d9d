"""Capture sources: pcap, pcapng, gzip, directories; batches of raw records."""
