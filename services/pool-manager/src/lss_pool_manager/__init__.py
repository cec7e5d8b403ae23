"""LLMSafeSpace pool manager: keeps each WarmPool filled with Ready WarmPods."""
