"""LLMSafeSpace sandbox reconciler: turns each Sandbox into its pod and children, and back."""
