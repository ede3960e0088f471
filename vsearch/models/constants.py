"""Constants defined once (open_clip's ``constants.py`` habit): normalisation, file names."""

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The file vsearch writes into every model folder beside config.json: the encoder spec.
SPEC_FILE = "vsearch.json"
