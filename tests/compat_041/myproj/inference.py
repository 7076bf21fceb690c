import os

from packflow import InferenceBackend


class Backend(InferenceBackend):
    """Inference backend for myproj."""

    def initialize(self):
        """Load model weights and other one-time setup."""
        self.model_name = os.environ.get("MYPROJ_MODEL_NAME", "unknown")
        self.logger.info(f"Initializing {self.model_name}")

    def transform_inputs(self, inputs):
        """Prepare the preprocessed records for the model."""
        return inputs

    def execute(self, inputs):
        """Run the model."""
        return [{"prediction": len(record), "model": self.model_name} for record in inputs]

    def transform_outputs(self, outputs):
        """Apply business logic to the model outputs."""
        return outputs
