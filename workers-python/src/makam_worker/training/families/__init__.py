"""The model families, one module each (encoder, decoder, scratch, tfidf), chosen by `model.family`;
hf_models.py holds what the two Hugging Face families (encoder, decoder) share. What every family
uses lies one level up: family.py (what a neural family hands the loop), common.py (the leaf)."""
