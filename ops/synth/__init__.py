"""Synthetic hospital source systems (EMR, LIS, PACS) with a separate ground truth.

`ops.synth.hospital.write_hospital` is the entry point; `oncofed-ops synth-hospital`
calls it.
"""
