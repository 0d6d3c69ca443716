"""Device connectivity, Thingport's second front door: devices log in and talk over MQTT here."""
