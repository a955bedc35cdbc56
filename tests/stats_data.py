"""A small CoNLL-U sample written for the `act stats --conllu` tests: comments, a multiword token (2-3), an empty
node (7.1), words that the demo tokenizer splits into several pieces, and a sentence longer than the demo model's
64 positions."""

from __future__ import annotations

LONG_WORDS = [("and", "CCONJ", "cc"), ("the", "DET", "det"), ("priest", "NOUN", "nsubj"), ("blessed", "VERB", "conj"),
              ("him", "PRON", "obj")] * 14  # 70 words, at least 70 pieces: more than 64 - 2


def _rows(words):
    return "\n".join(f"{i}\t{form}\t{form}\t{upos}\t_\t_\t{0 if i == 1 else 1}\t{'root' if i == 1 else deprel}\t_\t_"
                     for i, (form, upos, deprel) in enumerate(words, 1))


SAMPLE = f"""# newdoc id = act-stats-test
# sent_id = s1
# text = he don't know melchisedec.
1\the\the\tPRON\tPRP\t_\t4\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
5\tmelchisedec\tmelchisedec\tPROPN\tNNP\t_\t4\tobj\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = s2
# text = abraham gave a tenth, and isaac a blessing.
1\tabraham\tabraham\tPROPN\tNNP\t_\t2\tnsubj\t_\t_
2\tgave\tgive\tVERB\tVBD\t_\t0\troot\t_\t_
3\ta\ta\tDET\tDT\t_\t4\tdet\t_\t_
4\ttenth\ttenth\tNOUN\tNN\t_\t2\tobj\t_\tSpaceAfter=No
5\t,\t,\tPUNCT\t,\t_\t7\tpunct\t_\t_
6\tand\tand\tCCONJ\tCC\t_\t7\tcc\t_\t_
7\tisaac\tisaac\tPROPN\tNNP\t_\t2\tconj\t_\t_
7.1\tgave\tgive\tVERB\tVBD\t_\t_\t_\t2:conj\tCopyOf=2
8\ta\ta\tDET\tDT\t_\t9\tdet\t_\t_
9\tblessing\tblessing\tNOUN\tNN\t_\t7\torphan\t_\tSpaceAfter=No
10\t.\t.\tPUNCT\t.\t_\t2\tpunct\t_\t_

# sent_id = s3
1\tthe\tthe\tDET\tDT\t_\t3\tdet\t_\t_
2\tunchangeable\tunchangeable\tADJ\tJJ\t_\t3\tamod\t_\t_
3\tpriesthood\tpriesthood\tNOUN\tNN\t_\t0\troot\t_\t_
4\tof\tof\tADP\tIN\t_\t6\tcase\t_\t_
5\tnaïve\tnaive\tADJ\tJJ\t_\t6\tamod\t_\t_
6\tmelchisedecs\tmelchisedec\tPROPN\tNNPS\t_\t3\tnmod\t_\t_

# sent_id = s4-long
{_rows(LONG_WORDS)}
"""

# the integer-ID words of SAMPLE, per sentence: (FORM, UPOS, DEPREL), written out by hand
WORDS = [
    [("he", "PRON", "nsubj"), ("do", "AUX", "aux"), ("n't", "PART", "advmod"), ("know", "VERB", "root"),
     ("melchisedec", "PROPN", "obj"), (".", "PUNCT", "punct")],
    [("abraham", "PROPN", "nsubj"), ("gave", "VERB", "root"), ("a", "DET", "det"), ("tenth", "NOUN", "obj"),
     (",", "PUNCT", "punct"), ("and", "CCONJ", "cc"), ("isaac", "PROPN", "conj"), ("a", "DET", "det"),
     ("blessing", "NOUN", "orphan"), (".", "PUNCT", "punct")],
    [("the", "DET", "det"), ("unchangeable", "ADJ", "amod"), ("priesthood", "NOUN", "root"), ("of", "ADP", "case"),
     ("naïve", "ADJ", "amod"), ("melchisedecs", "PROPN", "nmod")],
    [(form, upos, "root" if i == 0 else deprel) for i, (form, upos, deprel) in enumerate(LONG_WORDS)],
]
