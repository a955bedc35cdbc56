"""The analyses behind `act stats` (Simoulin & Crabbé, 2021, "How Many Layers and Why?"), as plain functions.

    act.analysis.batching     batch_encode / run_batches: a corpus in padded batches of similar length (length
                              buckets), results mapped back to the original order
    act.analysis.categories   the token-type categories: ours and the research code's, side by side
    act.analysis.conllu       reading CoNLL-U and aligning its words with the tokenizer's pieces (word ids)
    act.analysis.summary      count / mean / std / seeded 95% bootstrap interval of a set of values
    act.analysis.cosine       cosine similarity between the states of consecutive iterations
    act.analysis.plots        the PNG figures (matplotlib, Agg backend)

Importing this package imports none of torch, tensorflow or transformers (NumPy only where a function needs it).
"""
