# analyze stage (rules added by its owner)
