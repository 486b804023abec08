"""learning: resolution study campaigns, quizzes, contests, reflections and their results."""
