"""The demo app (``musenet demo``): the Gradio page (:mod:`.app`), what it does behind the page
(:mod:`.demo_backend`), its branching history (:mod:`.demo_history`), and the composer and instrument
map (:mod:`.embeddings_plot`, also ``musenet embeddings-plot``)."""
