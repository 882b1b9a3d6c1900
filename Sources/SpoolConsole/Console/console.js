// Spool console
