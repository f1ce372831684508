"""Commands beyond training: each module defines click commands that cgfw.cli registers."""
