"""The network: :mod:`.configuration_musenet` (``MuseNetConfig``), :mod:`.modeling_musenet` (``MuseNetModel``,
``MuseNetForCausalLM``, the critic head), :mod:`.embeddings_musenet` (the structural embeddings),
:mod:`.attention` with its backends :mod:`.attention_structured` and :mod:`.attention_xformers` (sparse
attention), and :mod:`.baseline` (the plain GPT-2 it is measured against)."""
