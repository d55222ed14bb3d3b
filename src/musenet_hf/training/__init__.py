"""Training: the data (:mod:`.data`, :mod:`.augmentation`, :mod:`.batching`), the losses
(:mod:`.training_losses`), the Accelerate loop behind ``musenet train`` (:mod:`.loop`, configured by
:mod:`.training_config`, resumed by :mod:`.checkpointing`), the ``transformers.Trainer`` integration
(:mod:`.trainer_musenet`) and the inner critic (:mod:`.critic`, whose scores also rerank generations)."""
