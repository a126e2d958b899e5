"""RLHF Loop: reinforcement learning from human feedback, end to end."""
