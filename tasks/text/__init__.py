"""Voice of the customer: sentiment, language and themes of customer text (issue 22).

``models`` wraps the offline NLP packages, ``themes`` the keyword lexicon, ``annotate`` adds
the signals to the validated frames and unions them into one frame of texts, ``features``
turns them into windowed measures, ``evidence`` picks the texts behind a score or an action.
"""
