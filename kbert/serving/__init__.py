"""Talking to a served model: TF Serving REST requests and responses
(`client`, plain Python and `json`: no TensorFlow needed to call a server)."""
