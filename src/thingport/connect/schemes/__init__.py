"""The MQTT login schemes, asked in the order of :data:`SCHEMES`: the first that reads a CONNECT decides it.

A new scheme is one module here (a :class:`~thingport.connect.schemes.base.LoginScheme`) and one
entry below. The client id's form tells the schemes apart: signed logins have ``|`` in it,
OceanConnect's are ``{id}_{authType}_{sigType}_{YYYYMMDDHH}``. For a broker client's user name
(external broker), OceanConnect comes last: it takes any name the others do not. A CONNECT with a
client certificate (TLS listener) is the X.509 scheme's, whatever its form.
"""

from __future__ import annotations

from typing import Any

from thingport.connect.schemes.base import LoginScheme
from thingport.connect.schemes.oceanconnect import OceanConnectScheme
from thingport.connect.schemes.signed import SignedScheme
from thingport.connect.schemes.x509 import X509Scheme

SCHEMES: tuple[LoginScheme[Any], ...] = (X509Scheme(), SignedScheme(), OceanConnectScheme())
