"""sfu-bench: audio forwarding cost of a WebRTC SFU, measured on 127.0.0.1."""
# Copied from ../shared/tools/sfu-bench/sfubench/ (sfu-bench, 2026-11-24) for Haven's bench;
# unchanged except for the Haven adapter registration at the end of adapters.py.
