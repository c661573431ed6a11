"""Test model module that forgot its build function."""

VERSION = 1
