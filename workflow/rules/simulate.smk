# simulate stage (rules added by its owner)
