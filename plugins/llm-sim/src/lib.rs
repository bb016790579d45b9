//! A simulated executor LLM with calibrated skills.
