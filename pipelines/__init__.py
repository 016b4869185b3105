"""Runnable pipelines of medipy (installed as ``medipy.pipelines``)."""
