"""Fixtures shared by the job tests."""
import pytest

from webapp.store import Store


@pytest.fixture
def store(database_url):
    st = Store(database_url)
    st.upgrade()
    yield st
    st.dispose()
