"""Faster kernels for the CPU, chosen by measuring them on the machine a process runs on."""
