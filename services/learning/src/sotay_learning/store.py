"""Learning's private collections: written with the events that refer to them, never published.

Question texts and answer keys, the papers members drew, their answers,
reflection texts and the bodies of text materials go to these collections
through the command's unit of work (`uow.private(collection, doc)`), in the
same MongoDB transaction as the events; only the events reach Kafka.
"""

QUESTIONS = "vault.questions"  # text, options, answer key
MATERIALS = "vault.materials"  # bodies of text materials
PAPERS = "vault.papers"  # what each attempt drew, in its order
ANSWERS = "vault.answers"  # what each attempt answered, and how it scored
REFLECTIONS = "vault.reflections"  # reflection texts and their reviews

VAULT = (QUESTIONS, MATERIALS, PAPERS, ANSWERS, REFLECTIONS)
